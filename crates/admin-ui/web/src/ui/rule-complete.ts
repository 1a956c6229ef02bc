// Completion for the filter language (RuleInput): which identifier the caret is in, and what it
// may become — fields (through relations and back-relations), modifiers, `@request.*`,
// `@collection.*`, macros and functions — for a collection that may be an unsaved draft.
// Pure functions; the names follow crates/rules (the server's checker).
import type { CollectionModel } from "../lib/api";

export type SuggestionKind =
  | "field"
  | "relation"
  | "backrel"
  | "modifier"
  | "request"
  | "collection"
  | "macro"
  | "function"
  | "literal";

export interface Suggestion {
  /** The whole identifier the typed word becomes. */
  text: string;
  /** What it is, shown beside it: a field's type, a macro's meaning. */
  detail: string;
  kind: SuggestionKind;
}

export interface CompletionEnv {
  /** The collection the text is evaluated against (possibly unsaved). */
  draft: Partial<CollectionModel>;
  /** Every saved collection (the `collections` store). */
  all: CollectionModel[];
}

interface FieldLike {
  name: string;
  type: string;
  [key: string]: unknown;
}

interface CollLike {
  id?: string;
  name?: string;
  type?: string;
  system?: boolean;
  fields: FieldLike[];
}

/** Where stored rows come from: the collection itself, the submitted body, the auth record. */
type Ctx = "root" | "stored" | "body" | "auth";

const IDENT_CHAR = /[A-Za-z0-9_.:@#]/;

/**
 * The identifier that ends at `caret` (possibly empty), or null when the caret is inside a
 * quoted text, a `//` comment or a number.
 */
export function wordAt(text: string, caret: number): { start: number; word: string } | null {
  let quote = "";
  for (let i = 0; i < caret; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = "";
      continue;
    }
    if (c === "'" || c === '"') {
      quote = c;
    } else if (c === "/" && text[i + 1] === "/") {
      const nl = text.indexOf("\n", i);
      if (nl === -1 || nl >= caret) return null;
      i = nl;
    }
  }
  if (quote) return null;
  let start = caret;
  while (start > 0 && IDENT_CHAR.test(text[start - 1])) start--;
  const word = text.slice(start, caret);
  if (word && !/^[A-Za-z_@#]/.test(word)) return null;
  return { start, word };
}

const MACROS: [string, string][] = [
  ["@now", "current datetime (UTC)"],
  ["@yesterday", "datetime 24 h ago"],
  ["@tomorrow", "datetime in 24 h"],
  ["@todayStart", "today 00:00:00 UTC"],
  ["@todayEnd", "today 23:59:59 UTC"],
  ["@monthStart", "first day of this month"],
  ["@monthEnd", "last day of this month"],
  ["@yearStart", "1 January this year"],
  ["@yearEnd", "31 December this year"],
  ["@second", "number 0–59"],
  ["@minute", "number 0–59"],
  ["@hour", "number 0–23"],
  ["@weekday", "number 0–6, Sunday = 0"],
  ["@day", "day of the month"],
  ["@month", "number 1–12"],
  ["@year", "e.g. 2025"],
];

const FUNCTIONS: [string, string][] = [
  ["geoDistance(", "lonA, latA, lonB, latB → km"],
  ["strftime(", "format, time[, modifiers…] → text"],
];

const REQUEST_KEYS: Suggestion[] = [
  { text: "auth.", detail: "the signed-in record (empty for guests)", kind: "request" },
  { text: "body.", detail: "the submitted data", kind: "request" },
  { text: "query.", detail: "URL query parameters", kind: "request" },
  { text: "headers.", detail: "headers, lower_snake_case names", kind: "request" },
  { text: "method", detail: "GET, POST, PATCH, DELETE…", kind: "request" },
  { text: "context", detail: "default, oauth2, otp, password, realtime, protectedFile, batch, expand", kind: "request" },
];

const MOD_DETAIL: Record<string, string> = {
  each: "every item (with ?= … any item)",
  length: "number of items",
  lower: "lowercased",
  isset: "sent in the request",
  changed: "sent and different from the stored value",
};

const TEXTUAL = new Set(["text", "email", "url", "editor", "select"]);
const MULTI_CAPABLE = new Set(["select", "relation", "file"]);
/** Fields of no use in an expression (PocketBase never returns them). */
const USELESS = new Set(["password", "tokenKey"]);

function isMultiple(field: FieldLike): boolean {
  return MULTI_CAPABLE.has(field.type) && Number(field.maxSelect ?? 1) > 1;
}

/** Resolves collections by id and name, the draft winning over its saved version. */
class Schema {
  readonly root: CollLike;
  private readonly list: CollLike[];

  constructor(env: CompletionEnv) {
    this.root = asColl(env.draft);
    const others = env.all
      .filter((c) => !(this.root.id && c.id === this.root.id))
      .filter((c) => !(this.root.name && c.name === this.root.name))
      .map(asColl);
    this.list = [this.root, ...others];
  }

  byId(id: unknown): CollLike | undefined {
    if (typeof id !== "string" || !id) return undefined;
    return this.list.find((c) => c.id === id);
  }

  byName(name: string): CollLike | undefined {
    const lower = name.toLowerCase();
    return this.list.find((c) => c.name?.toLowerCase() === lower) ?? this.byId(name);
  }

  collections(): CollLike[] {
    const named = this.list.filter((c) => c.name);
    return [...named.filter((c) => !c.system), ...named.filter((c) => c.system)];
  }

  /** Relation fields of other collections that point at `target` (back-relations). */
  backRelations(target: CollLike): { coll: CollLike; field: FieldLike }[] {
    if (!target.id) return [];
    const out: { coll: CollLike; field: FieldLike }[] = [];
    for (const coll of this.list) {
      if (!coll.name) continue;
      for (const field of coll.fields) {
        if (field.type === "relation" && field.collectionId === target.id) out.push({ coll, field });
      }
    }
    return out;
  }

  /** What `@request.auth` can be: the union of the (non-superuser) auth collections' fields. */
  authUnion(): { coll: CollLike; owners: Map<string, string[]>; count: number } {
    const auths = this.list.filter((c) => c.type === "auth" && c.name !== "_superusers");
    const fields: FieldLike[] = [];
    const owners = new Map<string, string[]>();
    for (const coll of auths) {
      for (const field of fieldsOf(coll, "auth")) {
        if (!owners.has(field.name)) {
          owners.set(field.name, []);
          fields.push(field);
        }
        owners.get(field.name)!.push(coll.name ?? "");
      }
    }
    for (const name of ["id", "email", "emailVisibility", "verified"]) {
      if (!owners.has(name)) {
        fields.push(systemField(name));
        owners.set(name, []);
      }
    }
    return { coll: { name: "@request.auth", type: "auth", fields }, owners, count: auths.length };
  }
}

function asColl(c: Partial<CollectionModel>): CollLike {
  const fields = Array.isArray(c.fields) ? (c.fields as FieldLike[]) : [];
  return {
    id: c.id,
    name: c.name,
    type: c.type,
    system: Boolean(c.system),
    fields: fields.filter((f) => f && typeof f.name === "string" && f.name),
  };
}

function systemField(name: string): FieldLike {
  const type = name === "email" ? "email" : name === "id" ? "text" : "bool";
  return { name, type };
}

/** A collection's fields as expressions see them: `id` always, auth basics for auth ones. */
function fieldsOf(coll: CollLike, ctx: Ctx): FieldLike[] {
  const names = new Set(coll.fields.map((f) => f.name));
  const extra: FieldLike[] = [];
  if (!names.has("id")) extra.push(systemField("id"));
  if (coll.type === "auth") {
    for (const name of ["email", "emailVisibility", "verified"]) {
      if (!names.has(name)) extra.push(systemField(name));
    }
  }
  const fields = [...extra, ...coll.fields];
  if (ctx === "body") return fields.filter((f) => f.type !== "autodate" && f.name !== "tokenKey");
  return fields.filter((f) => !USELESS.has(f.name));
}

function typeLabel(field: FieldLike, schema: Schema): string {
  if (field.type === "relation") {
    const target = schema.byId(field.collectionId);
    return `relation → ${target?.name ?? "?"}${isMultiple(field) ? " (multiple)" : ""}`;
  }
  if (isMultiple(field)) return `${field.type} (multiple)`;
  return field.type;
}

function fieldEntries(coll: CollLike, ctx: Ctx, schema: Schema): Suggestion[] {
  const out: Suggestion[] = [];
  for (const field of fieldsOf(coll, ctx)) {
    out.push({
      text: field.name,
      detail: typeLabel(field, schema),
      kind: field.type === "relation" ? "relation" : "field",
    });
  }
  if (ctx === "root" || ctx === "stored") {
    for (const { coll: from, field } of schema.backRelations(coll)) {
      out.push({
        text: `${from.name}_via_${field.name}`,
        detail: `back-relation ← ${from.name}.${field.name}`,
        kind: "backrel",
      });
    }
  }
  return out;
}

type Step = { coll: CollLike; ctx: Ctx } | { field: FieldLike; ctx: Ctx } | null;

/** Follows `segments` from `coll`: to a collection (relation, back-relation) or to a field. */
function walk(coll: CollLike, segments: string[], ctx: Ctx, schema: Schema): Step {
  let current: CollLike = coll;
  let currentCtx = ctx;
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    const last = i === segments.length - 1;
    const field = fieldsOf(current, currentCtx).find((f) => f.name === seg);
    if (field) {
      if (last) return { field, ctx: currentCtx };
      if (field.type !== "relation") return null;
      const target = schema.byId(field.collectionId);
      if (!target) return null;
      current = target;
      currentCtx = "stored";
      continue;
    }
    const via = seg.lastIndexOf("_via_");
    if (via > 0 && (currentCtx === "root" || currentCtx === "stored")) {
      const from = schema.byName(seg.slice(0, via));
      const relField = from?.fields.find((f) => f.name === seg.slice(via + 5));
      if (from && relField?.type === "relation" && relField.collectionId === current.id) {
        if (last) return null;
        current = from;
        currentCtx = "stored";
        continue;
      }
    }
    return null;
  }
  return { coll: current, ctx: currentCtx };
}

/** The children of `path` (what may follow `path.`), relative to it. */
function childrenOf(path: string, schema: Schema): Suggestion[] {
  const segs = path.split(".");
  if (segs[0] === "@request") {
    if (segs.length === 1) return REQUEST_KEYS;
    const [, head, ...rest] = segs;
    if (head === "auth") {
      const union = schema.authUnion();
      if (rest.length === 0) {
        return [
          ...fieldEntries(union.coll, "auth", schema).map((s) => {
            const owners = union.owners.get(s.text) ?? [];
            return owners.length && owners.length < union.count ? { ...s, detail: `${s.detail} · ${owners.join(", ")}` } : s;
          }),
          { text: "collectionId", detail: "text", kind: "field" as const },
          { text: "collectionName", detail: "text", kind: "field" as const },
        ];
      }
      return containerEntries(walk(union.coll, rest, "auth", schema), schema);
    }
    if (head === "body") return containerEntries(walk(schema.root, rest, "body", schema), schema);
    return [];
  }
  if (segs[0] === "@collection") {
    if (segs.length === 1) {
      return schema.collections().map((c) => ({
        text: `${c.name}.`,
        detail: `${c.type ?? ""} collection`.trim(),
        kind: "collection" as const,
      }));
    }
    const target = schema.byName(segs[1].split(":")[0]);
    if (!target) return [];
    return containerEntries(walk(target, segs.slice(2), "stored", schema), schema);
  }
  if (segs[0].startsWith("@") || segs[0].startsWith("#")) return [];
  return containerEntries(walk(schema.root, segs, "root", schema), schema);
}

function containerEntries(step: Step, schema: Schema): Suggestion[] {
  if (!step) return [];
  if ("coll" in step) return fieldEntries(step.coll, step.ctx, schema);
  if (step.field.type === "relation") {
    const target = schema.byId(step.field.collectionId);
    return target ? fieldEntries(target, "stored", schema) : [];
  }
  if (step.field.type === "geoPoint") {
    return [
      { text: "lon", detail: "longitude", kind: "field" },
      { text: "lat", detail: "latitude", kind: "field" },
    ];
  }
  return [];
}

function modifierNames(field: FieldLike, ctx: Ctx): string[] {
  const out: string[] = [];
  if (ctx === "body") out.push("isset", "changed");
  if (isMultiple(field)) out.push("each", "length");
  if (TEXTUAL.has(field.type)) out.push("lower");
  return out;
}

/** The modifiers that may follow `path:`. */
function modifiersOf(path: string, schema: Schema): string[] {
  const segs = path.split(".");
  if (segs[0] === "@request") {
    const [, head, ...rest] = segs;
    if ((head === "query" || head === "headers") && rest.length === 1 && rest[0]) return ["isset", "lower"];
    if (head === "auth" && rest.length) {
      const step = walk(schema.authUnion().coll, rest, "auth", schema);
      return step && "field" in step ? modifierNames(step.field, step.ctx) : [];
    }
    if (head === "body" && rest.length) {
      const step = walk(schema.root, rest, "body", schema);
      if (!step || !("field" in step)) return [];
      return rest.length === 1 ? modifierNames(step.field, "body") : modifierNames(step.field, "stored");
    }
    return [];
  }
  if (segs[0] === "@collection") {
    const target = segs[1] ? schema.byName(segs[1].split(":")[0]) : undefined;
    if (!target || segs.length < 3) return [];
    const step = walk(target, segs.slice(2), "stored", schema);
    return step && "field" in step ? modifierNames(step.field, step.ctx) : [];
  }
  if (segs[0].startsWith("@")) return [];
  const step = walk(schema.root, segs, "root", schema);
  return step && "field" in step ? modifierNames(step.field, step.ctx) : [];
}

function rootEntries(schema: Schema): Suggestion[] {
  const out: Suggestion[] = [];
  for (const entry of fieldEntries(schema.root, "root", schema)) {
    out.push(entry);
    if (entry.kind !== "relation") continue;
    const field = schema.root.fields.find((f) => f.name === entry.text);
    const target = field && schema.byId(field.collectionId);
    if (!target) continue;
    for (const sub of fieldsOf(target, "stored")) {
      out.push({
        text: `${entry.text}.${sub.name}`,
        detail: typeLabel(sub, schema),
        kind: sub.type === "relation" ? "relation" : "field",
      });
    }
  }
  out.push({ text: "@request.", detail: "the request: auth, body, query, headers…", kind: "request" });
  out.push({ text: "@collection.", detail: "join any collection", kind: "collection" });
  for (const [text, detail] of MACROS) out.push({ text, detail, kind: "macro" });
  for (const [text, detail] of FUNCTIONS) out.push({ text, detail, kind: "function" });
  for (const text of ["true", "false", "null"]) out.push({ text, detail: "literal", kind: "literal" });
  return out;
}

/** At most this many suggestions are offered at once. */
export const MAX_SUGGESTIONS = 80;

/** What `word` (the identifier before the caret) may become, best first. */
export function suggest(word: string, env: CompletionEnv): Suggestion[] {
  const schema = new Schema(env);
  const cut = Math.max(word.lastIndexOf("."), word.lastIndexOf(":"));
  const base = word.slice(0, cut + 1);
  const partial = word.slice(cut + 1);
  let entries: Suggestion[];
  if (cut < 0) {
    entries = rootEntries(schema);
  } else if (word[cut] === ".") {
    entries = childrenOf(word.slice(0, cut), schema);
  } else {
    entries = modifiersOf(word.slice(0, cut), schema).map((m) => ({
      text: m,
      detail: MOD_DETAIL[m] ?? "",
      kind: "modifier" as const,
    }));
  }
  const lower = partial.toLowerCase();
  const prefix: Suggestion[] = [];
  const contains: Suggestion[] = [];
  for (const entry of entries) {
    const name = entry.text.toLowerCase();
    if (name.startsWith(lower)) prefix.push(entry);
    else if (lower.length >= 2 && name.includes(lower)) contains.push(entry);
  }
  const out: Suggestion[] = [];
  for (const entry of [...prefix, ...contains]) {
    out.push({ ...entry, text: base + entry.text });
    // A fully typed field offers its modifiers right after it.
    if (entry.text === partial && (entry.kind === "field" || entry.kind === "relation")) {
      for (const m of modifiersOf(base + entry.text, schema)) {
        out.push({ text: `${base}${entry.text}:${m}`, detail: MOD_DETAIL[m] ?? "", kind: "modifier" });
      }
    }
    if (out.length >= MAX_SUGGESTIONS) break;
  }
  return out.slice(0, MAX_SUGGESTIONS);
}
