// The collection editor's draft: a collection as the API shapes it, plus a client key on every
// field (so rows keep their identity while they are renamed, moved or removed) and a removal
// mark (a removed field stays listed, restorable, until the save drops it).
import type { CollectionModel } from "../../lib/api";

export type CollectionType = "base" | "auth" | "view";

/** A field as the API returns it, with the editor's own keys (`_key`, `_removed`). */
export interface DraftField {
  [option: string]: any;
  id?: string;
  name: string;
  type: string;
  system: boolean;
  hidden: boolean;
  presentable: boolean;
  _key: string;
  _removed?: boolean;
}

export interface Draft {
  [key: string]: any;
  id?: string;
  name: string;
  type: CollectionType;
  fields: DraftField[];
  indexes: string[];
  listRule: string | null;
  viewRule: string | null;
  createRule: string | null;
  updateRule: string | null;
  deleteRule: string | null;
  viewQuery?: string;
}

/** Applies a change to the draft; `touched` (a path like "fields.k3." or "listRule") clears its errors. */
export type Update = (change: (draft: Draft) => Draft, touched?: string) => void;

export interface FieldType {
  type: string;
  label: string;
  icon: string;
  /** One line for the type picker. */
  about: string;
  /** The options a new field of this type starts with (PocketBase's defaults). */
  defaults: Record<string, unknown>;
}

const common = { required: false, help: "" };

export const FIELD_TYPES: readonly FieldType[] = [
  { type: "text", label: "Plain text", icon: "T", about: "A string, optionally limited by length or pattern", defaults: { ...common, min: 0, max: 0, pattern: "", autogeneratePattern: "", primaryKey: false } },
  { type: "editor", label: "Rich editor", icon: "¶", about: "HTML text edited with formatting", defaults: { ...common, maxSize: 0, convertURLs: false } },
  { type: "number", label: "Number", icon: "#", about: "A float, or an integer with “only integers”", defaults: { ...common, min: null, max: null, onlyInt: false } },
  { type: "bool", label: "Bool", icon: "◑", about: "true or false", defaults: { ...common } },
  { type: "email", label: "Email", icon: "@", about: "An email address, optionally limited to domains", defaults: { ...common, exceptDomains: [], onlyDomains: [] } },
  { type: "url", label: "URL", icon: "svg:link", about: "A link, optionally limited to domains", defaults: { ...common, exceptDomains: [], onlyDomains: [] } },
  { type: "date", label: "Date/time", icon: "svg:calendar", about: "A UTC date and time", defaults: { ...common, min: "", max: "" } },
  { type: "autodate", label: "Autodate", icon: "svg:clock", about: "Set by the server on create and/or update", defaults: { onCreate: true, onUpdate: false } },
  { type: "select", label: "Select", icon: "☰", about: "One or several values from a fixed list", defaults: { ...common, values: [], maxSelect: 1 } },
  { type: "file", label: "File", icon: "svg:clip", about: "Uploaded files, with thumbnails for images", defaults: { ...common, maxSelect: 1, maxSize: 0, mimeTypes: [], thumbs: [], protected: false } },
  { type: "relation", label: "Relation", icon: "⇄", about: "Links to records of another collection", defaults: { ...common, collectionId: "", cascadeDelete: false, minSelect: 0, maxSelect: 1 } },
  { type: "json", label: "JSON", icon: "{}", about: "Any JSON value", defaults: { ...common, maxSize: 0 } },
  { type: "geoPoint", label: "Geo point", icon: "svg:pin", about: "A longitude/latitude pair", defaults: { ...common } },
];

/** Types that exist but are not offered by the picker (auth system fields). */
const OTHER_TYPES: readonly FieldType[] = [
  { type: "password", label: "Password", icon: "*", about: "A bcrypt hash; never returned", defaults: { ...common, min: 0, max: 0, pattern: "", cost: 0 } },
];

export function fieldType(type: string): FieldType {
  return (
    FIELD_TYPES.find((t) => t.type === type) ??
    OTHER_TYPES.find((t) => t.type === type) ?? { type, label: type, icon: "?", about: "", defaults: {} }
  );
}

let nextKey = 1;
export function newKey(): string {
  return `k${nextKey++}`;
}

/** A fresh unused name: `field`, `field2`, … (or `base`, `base_copy`, …). */
export function uniqueName(base: string, taken: Iterable<string>): string {
  const names = new Set([...taken].map((n) => n.toLowerCase()));
  if (!names.has(base.toLowerCase())) return base;
  for (let i = 2; ; i++) {
    if (!names.has(`${base}${i}`.toLowerCase())) return `${base}${i}`;
  }
}

export function newField(type: string, taken: Iterable<string>): DraftField {
  const t = fieldType(type);
  return {
    name: uniqueName("field", taken),
    type,
    system: false,
    hidden: false,
    presentable: false,
    ...structuredClone(t.defaults),
    _key: newKey(),
  };
}

/** The created/updated autodate fields the dashboard adds to every new base/auth collection. */
export function timestampFields(): DraftField[] {
  return [
    { name: "created", type: "autodate", system: false, hidden: false, presentable: false, onCreate: true, onUpdate: false, _key: newKey() },
    { name: "updated", type: "autodate", system: false, hidden: false, presentable: false, onCreate: true, onUpdate: true, _key: newKey() },
  ];
}

/** A collection from the API turned into an editable draft (deep copy). */
export function toDraft(collection: CollectionModel | Record<string, any>): Draft {
  const copy = structuredClone(collection) as Record<string, any>;
  copy.fields = ((copy.fields ?? []) as Record<string, any>[]).map((f) => ({ ...f, _key: newKey() }));
  copy.indexes = [...(copy.indexes ?? [])];
  return copy as Draft;
}

export function activeFields(draft: Draft): DraftField[] {
  return draft.fields.filter((f) => !f._removed);
}

/** Keys of the draft the API does not take (read-only output). */
const OUTPUT_ONLY = ["created", "updated", "collectionId", "collectionName", "expand"];

export interface Payload {
  body: Record<string, any>;
  /** body.fields[i] is the draft field with key fieldKeys[i]. */
  fieldKeys: string[];
  /** Indexes left out because they use a removed field. */
  droppedIndexes: string[];
}

/** Quotes an identifier the way the dashboard writes index SQL. */
export function quoteId(name: string): string {
  return "`" + name.replace(/`/g, "``") + "`";
}

/** The body to send: removed fields left out, editor keys stripped, indexes pointed at the table. */
export function buildPayload(draft: Draft, original: Draft | null): Payload {
  const body: Record<string, any> = {};
  for (const [key, value] of Object.entries(draft)) {
    if (OUTPUT_ONLY.includes(key) || key.startsWith("_")) continue;
    body[key] = value;
  }
  const fieldKeys: string[] = [];
  body.fields = draft.fields
    .filter((f) => !f._removed)
    .map((f) => {
      fieldKeys.push(f._key);
      const out: Record<string, any> = {};
      for (const [key, value] of Object.entries(f)) if (!key.startsWith("_")) out[key] = value;
      return out;
    });
  const droppedIndexes: string[] = [];
  if (draft.type === "view") {
    body.fields = [];
    body.indexes = [];
    body.createRule = null;
    body.updateRule = null;
    body.deleteRule = null;
  } else {
    const activeNames = new Set(activeFields(draft).map((f) => f.name.toLowerCase()));
    const removedNames = draft.fields
      .filter((f) => f._removed && !activeNames.has(f.name.toLowerCase()))
      .map((f) => f.name);
    body.indexes = draft.indexes
      .filter((sql) => {
        const uses = removedNames.some((name) => indexUsesColumn(sql, name));
        if (uses) droppedIndexes.push(sql);
        return !uses;
      })
      .map((sql) => retargetIndex(sql, draft.name));
    delete body.viewQuery;
  }
  if (draft.type === "auth") {
    const names = new Set((body.fields as { name: string }[]).map((f) => f.name));
    if (body.passwordAuth) {
      body.passwordAuth = {
        ...body.passwordAuth,
        identityFields: (body.passwordAuth.identityFields ?? []).filter((n: string) => names.has(n)),
      };
    }
    if (body.oauth2) {
      const originalProviders = new Set(
        ((original?.oauth2?.providers ?? []) as { name: string }[]).map((p) => p.name),
      );
      body.oauth2 = {
        ...body.oauth2,
        providers: (body.oauth2.providers ?? []).map((p: Record<string, any>) => {
          const copy = { ...p };
          delete copy.logo;
          // The secret is write-only: blank on a provider the server knows keeps the stored one.
          if (!copy.clientSecret && originalProviders.has(copy.name)) delete copy.clientSecret;
          return copy;
        }),
      };
    }
  }
  return { body, fieldKeys, droppedIndexes };
}

export function isNewField(field: DraftField, original: Draft | null): boolean {
  return !field.id || !original?.fields.some((f) => f.id === field.id);
}

/** The original (saved) version of a draft field, when it has one. */
export function originalField(field: DraftField, original: Draft | null): DraftField | undefined {
  if (!field.id || !original) return undefined;
  return original.fields.find((f) => f.id === field.id);
}

// ---------------------------------------------------------------------------------------------
// Index SQL: `CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON table (col [COLLATE x] [ASC|DESC], …)
// [WHERE expr]`. Parsed so the dialog can offer a column picker; anything it cannot parse is
// still editable as raw text.

export interface IndexColumn {
  name: string;
  /** What follows the column: ` COLLATE NOCASE`, ` DESC`, … (kept verbatim). */
  suffix: string;
  /** True when the column is an expression, not a plain name. */
  expression: boolean;
}

export interface ParsedIndex {
  unique: boolean;
  ifNotExists: boolean;
  name: string;
  table: string;
  columns: IndexColumn[];
  where: string;
}

const IDENT = String.raw`(?:\`(?:[^\`]|\`\`)*\`|"(?:[^"]|"")*"|\[[^\]]*\]|[\w$]+)`;
const HEAD_RE = new RegExp(
  String.raw`^\s*create\s+(unique\s+)?index\s+(if\s+not\s+exists\s+)?(${IDENT})\s+on\s+(${IDENT})\s*\(`,
  "i",
);

export function unquote(id: string): string {
  const t = id.trim();
  if (t.startsWith("`") && t.endsWith("`")) return t.slice(1, -1).replace(/``/g, "`");
  if (t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1).replace(/""/g, '"');
  if (t.startsWith("[") && t.endsWith("]")) return t.slice(1, -1);
  return t;
}

/** Splits on top-level commas (not inside parentheses or quotes). */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote = "";
  let current = "";
  for (const ch of text) {
    if (quote) {
      if (ch === quote) quote = "";
    } else if (ch === "'" || ch === '"' || ch === "`") {
      quote = ch;
    } else if (ch === "(") {
      depth++;
    } else if (ch === ")") {
      depth--;
    } else if (ch === "," && depth === 0) {
      parts.push(current);
      current = "";
      continue;
    }
    current += ch;
  }
  if (current.trim()) parts.push(current);
  return parts;
}

export function parseIndex(sql: string): ParsedIndex | null {
  const m = HEAD_RE.exec(sql);
  if (!m) return null;
  // The column list runs to the ")" that closes the one HEAD_RE ended on.
  let depth = 1;
  let quote = "";
  let i = m[0].length;
  for (; i < sql.length && depth > 0; i++) {
    const ch = sql[i];
    if (quote) {
      if (ch === quote) quote = "";
    } else if (ch === "'" || ch === '"' || ch === "`") quote = ch;
    else if (ch === "(") depth++;
    else if (ch === ")") depth--;
  }
  if (depth !== 0) return null;
  const columnsText = sql.slice(m[0].length, i - 1);
  const rest = sql.slice(i).trim().replace(/;\s*$/, "");
  let where = "";
  if (rest) {
    const w = /^where\s+([\s\S]+)$/i.exec(rest);
    if (!w) return null;
    where = w[1].trim();
  }
  const columns = splitTopLevel(columnsText).map((part) => {
    const colMatch = new RegExp(String.raw`^\s*(${IDENT})(\s+[\s\S]*)?$`).exec(part);
    if (colMatch && !/[()]/.test(colMatch[2] ?? "")) {
      return { name: unquote(colMatch[1]), suffix: (colMatch[2] ?? "").trim(), expression: false };
    }
    return { name: part.trim(), suffix: "", expression: true };
  });
  if (!columns.length) return null;
  return {
    unique: Boolean(m[1]),
    ifNotExists: Boolean(m[2]),
    name: unquote(m[3]),
    table: unquote(m[4]),
    columns,
    where,
  };
}

export function buildIndex(index: ParsedIndex): string {
  const cols = index.columns
    .map((c) => (c.expression ? c.name : quoteId(c.name) + (c.suffix ? " " + c.suffix.trim() : "")))
    .join(", ");
  let sql = `CREATE ${index.unique ? "UNIQUE " : ""}INDEX ${index.ifNotExists ? "IF NOT EXISTS " : ""}${quoteId(index.name)} ON ${quoteId(index.table)} (${cols})`;
  if (index.where.trim()) sql += ` WHERE ${index.where.trim()}`;
  return sql;
}

/** Points an index at `table` (the scaffold's indexes name no table; a rename changes it). */
export function retargetIndex(sql: string, table: string): string {
  const parsed = parseIndex(sql);
  if (!parsed || parsed.table === table || !table) return sql;
  return sql.replace(new RegExp(String.raw`(\s+on\s+)${IDENT}`, "i"), `$1${quoteId(table)}`);
}

export function indexUsesColumn(sql: string, column: string): boolean {
  const parsed = parseIndex(sql);
  if (!parsed) return false;
  const lower = column.toLowerCase();
  return parsed.columns.some((c) =>
    c.expression ? new RegExp(String.raw`\b${escapeRegExp(column)}\b`, "i").test(c.name) : c.name.toLowerCase() === lower,
  );
}

/** The index with column `from` renamed to `to` (unchanged when it does not use it). */
export function renameIndexColumn(sql: string, from: string, to: string): string {
  const parsed = parseIndex(sql);
  if (!parsed || !from || !to || from === to) return sql;
  let changed = false;
  const columns = parsed.columns.map((c) => {
    if (!c.expression && c.name.toLowerCase() === from.toLowerCase()) {
      changed = true;
      return { ...c, name: to };
    }
    return c;
  });
  if (!changed) return sql;
  return buildIndex({ ...parsed, columns });
}

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A random lowercase alphanumeric string (index name suffixes, token secrets). */
export function randomId(length: number, alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

/** Does `text` (a rule or query) mention the identifier `name` as a whole word? */
export function mentions(text: string | null | undefined, name: string): boolean {
  if (!text || !name) return false;
  return new RegExp(String.raw`(^|[^\w.@])${escapeRegExp(name)}(?![\w])`).test(text);
}

export const RULE_KEYS = ["listRule", "viewRule", "createRule", "updateRule", "deleteRule"] as const;
export const AUTH_RULE_KEYS = ["authRule", "manageRule"] as const;

/** Bytes as "5 MB". */
export function formatBytes(bytes: number): string {
  if (!bytes) return "0 B";
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Seconds as "5 days", "30 minutes", "1 h 30 min". */
export function formatDuration(seconds: number | null | undefined): string {
  if (!seconds || seconds < 0) return "";
  const parts: string[] = [];
  const units: [number, string][] = [
    [86400, "d"],
    [3600, "h"],
    [60, "min"],
    [1, "s"],
  ];
  let left = Math.floor(seconds);
  for (const [size, label] of units) {
    if (left >= size) {
      parts.push(`${Math.floor(left / size)} ${label}`);
      left %= size;
    }
  }
  return parts.slice(0, 2).join(" ");
}
