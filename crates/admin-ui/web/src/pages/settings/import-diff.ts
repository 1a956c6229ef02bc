// Collections import (PUT /api/collections/import) planned before it is sent: what each item
// of the pasted JSON will do to the current schema, and the body to send.
//
// How the server reads an item (crates/server/src/collections/import.rs and form.rs, and
// PocketBase 0.40, which they follow):
// - an item updates the collection with its `id` or, without one, its name (any case); else
//   it creates a collection;
// - keys left out of an item keep their stored values (auth options merge key by key), except
//   `fields`: a listed field replaces the stored one whole (options left out take their
//   defaults), and matches a stored field by `id`, or without one by name and type;
// - stored fields the item leaves out: PocketBase keeps them unless `deleteMissing`, and always
//   keeps system ones; Plinth re-adds only `id` and the auth system fields and drops the rest.
//   The dashboard therefore sends every left-out system field back itself, and the other
//   left-out fields too when "keep missing fields" is on, so both servers do the same;
// - with `deleteMissing`, collections not in the import are deleted, system ones never.
import type { CollectionModel } from "../../lib/api";

type Obj = Record<string, unknown>;

export interface ValueChange {
  key: string;
  old: unknown;
  new: unknown;
}

export type FieldStatus = "added" | "removed" | "renamed" | "changed" | "unchanged" | "kept";

export interface FieldDiff {
  status: FieldStatus;
  id: string;
  name: string;
  oldName?: string;
  type: string;
  oldType?: string;
  system: boolean;
  /** Options that change (not name or type). */
  changes: ValueChange[];
  /** Why this loses stored values, if it does. */
  loss?: string;
  /** Something the server will likely refuse, or that deserves a look. */
  warning?: string;
}

export type CollectionStatus = "new" | "changed" | "unchanged" | "deleted";

export interface Warning {
  level: "danger" | "warn";
  text: string;
}

export interface CollectionDiff {
  status: CollectionStatus;
  /** Stable key: the stored id, or `+<index>` for a new item without one. */
  key: string;
  id: string;
  name: string;
  oldName?: string;
  type: string;
  system: boolean;
  fields: FieldDiff[];
  rules: ValueChange[];
  /** Other settings that change (name, type, view query, auth options…). */
  props: ValueChange[];
  indexesAdded: string[];
  indexesRemoved: string[];
  warnings: Warning[];
  /** Records in this collection may lose data (deleted collection, removed/retyped fields). */
  dataLoss: boolean;
}

export interface ImportPlan {
  diffs: CollectionDiff[];
  /** The `collections` to send. */
  payload: Obj[];
  /** Problems that make the import pointless to send (listed twice…). */
  problems: string[];
  counts: Record<CollectionStatus, number>;
}

export interface ImportOptions {
  deleteMissing: boolean;
  /** Send back the stored non-system fields an item leaves out (PocketBase's merge). */
  keepMissingFields: boolean;
}

export const RULE_KEYS = [
  "listRule",
  "viewRule",
  "createRule",
  "updateRule",
  "deleteRule",
  "authRule",
  "manageRule",
] as const;

const AUTH_KEYS = [
  "authAlert",
  "oauth2",
  "passwordAuth",
  "mfa",
  "otp",
  "authToken",
  "passwordResetToken",
  "emailChangeToken",
  "verificationToken",
  "fileToken",
  "verificationTemplate",
  "resetPasswordTemplate",
  "confirmEmailChangeTemplate",
];

// ---------------------------------------------------------------------------------------
// Parsing

export interface Parsed {
  items: Obj[] | null;
  error: string | null;
}

/**
 * Reads the pasted text: an array of collections (what export produces), or the API's body
 * `{collections: […]}`, or one collection object.
 */
export function parseImport(text: string): Parsed {
  if (!text.trim()) return { items: null, error: null };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { items: null, error: `Invalid JSON: ${jsonErrorText(error, text)}` };
  }
  let list: unknown;
  if (Array.isArray(value)) list = value;
  else if (isObj(value) && Array.isArray(value.collections)) list = value.collections;
  else if (isObj(value) && (typeof value.name === "string" || typeof value.id === "string")) list = [value];
  else return { items: null, error: "Expected a JSON array of collections." };
  const items = list as unknown[];
  if (!items.length) return { items: null, error: "The list of collections is empty." };
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const where = `Collection ${i + 1}`;
    if (!isObj(item)) return { items: null, error: `${where} is not an object.` };
    const label = typeof item.name === "string" && item.name ? `${where} (${item.name})` : where;
    if (typeof item.name !== "string" || !item.name.trim()) {
      if (typeof item.id !== "string" || !item.id) {
        return { items: null, error: `${where} needs a "name" (or the "id" of an existing collection).` };
      }
    }
    if (item.type !== undefined && item.type !== null && !["base", "auth", "view"].includes(String(item.type))) {
      return { items: null, error: `${label}: "type" must be "base", "auth" or "view".` };
    }
    if (item.fields !== undefined && item.fields !== null) {
      if (!Array.isArray(item.fields)) return { items: null, error: `${label}: "fields" must be an array.` };
      for (let j = 0; j < item.fields.length; j++) {
        const field = item.fields[j];
        if (!isObj(field)) return { items: null, error: `${label}: field ${j + 1} is not an object.` };
        if (typeof field.type !== "string" || !field.type) {
          return { items: null, error: `${label}: field ${j + 1}${field.name ? ` (${field.name})` : ""} needs a "type".` };
        }
        if (typeof field.name !== "string" || !field.name) {
          return { items: null, error: `${label}: field ${j + 1} needs a "name".` };
        }
      }
    }
  }
  return { items: items as Obj[], error: null };
}

/** The JSON error with a line and column when the engine gives a position. */
function jsonErrorText(error: unknown, text: string): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/line \d+ column \d+/.test(message)) return message;
  const m = /position (\d+)/.exec(message);
  if (!m) return message;
  const upto = text.slice(0, Number(m[1]));
  const line = upto.split("\n").length;
  const column = upto.length - upto.lastIndexOf("\n");
  return `${message} (line ${line}, column ${column})`;
}

// ---------------------------------------------------------------------------------------
// Planning

export function planImport(items: Obj[], existing: CollectionModel[], options: ImportOptions): ImportPlan {
  const byId = new Map(existing.map((c) => [c.id, c]));
  const byName = new Map(existing.map((c) => [c.name.toLowerCase(), c]));
  const matched = new Map<string, number>();
  const problems: string[] = [];
  const diffs: CollectionDiff[] = [];
  const payload: Obj[] = [];

  items.forEach((item, index) => {
    const id = str(item.id);
    const name = str(item.name);
    const old = id ? byId.get(id) : byName.get(name.toLowerCase());
    if (old) {
      const earlier = matched.get(old.id);
      if (earlier !== undefined) {
        problems.push(`Collections ${earlier + 1} and ${index + 1} both refer to “${old.name}”.`);
      }
      matched.set(old.id, index);
      const { diff, body } = compareCollection(old, item, options);
      diffs.push(diff);
      payload.push(body);
    } else {
      diffs.push(newCollection(item, index));
      payload.push({ ...item });
    }
  });

  // A new item whose name belongs to another stored collection that stays.
  for (const diff of diffs) {
    if (diff.status !== "new") continue;
    const clash = byName.get(diff.name.toLowerCase());
    if (clash && !(options.deleteMissing && !clash.system && !matched.has(clash.id))) {
      diff.warnings.push({
        level: "danger",
        text: `A collection named “${clash.name}” already exists with another id (${clash.id}): the import will fail. Remove the "id" to update that one instead.`,
      });
    }
  }

  if (options.deleteMissing) {
    for (const old of existing) {
      if (old.system || matched.has(old.id)) continue;
      diffs.push(deletedCollection(old));
    }
  }

  const counts: Record<CollectionStatus, number> = { new: 0, changed: 0, unchanged: 0, deleted: 0 };
  for (const d of diffs) counts[d.status]++;
  return { diffs, payload, problems, counts };
}

function newCollection(item: Obj, index: number): CollectionDiff {
  const type = str(item.type) || "base";
  const fields: FieldDiff[] = (Array.isArray(item.fields) ? (item.fields as Obj[]) : []).map((f) => ({
    status: "added",
    id: str(f.id),
    name: str(f.name),
    type: str(f.type),
    system: Boolean(f.system),
    changes: [],
  }));
  const rules: ValueChange[] = [];
  for (const key of RULE_KEYS) {
    if (!isRuleFor(key, type)) continue;
    // A rule left out of a new collection is null: superusers only.
    rules.push({ key, old: undefined, new: key in item ? item[key] : null });
  }
  const props: ValueChange[] = [];
  if (type === "view") props.push({ key: "viewQuery", old: undefined, new: item.viewQuery ?? "" });
  return {
    status: "new",
    key: str(item.id) || `+${index}`,
    id: str(item.id),
    name: str(item.name),
    type,
    system: Boolean(item.system),
    fields,
    rules,
    props,
    indexesAdded: Array.isArray(item.indexes) ? (item.indexes as unknown[]).map(String) : [],
    indexesRemoved: [],
    warnings: [],
    dataLoss: false,
  };
}

function deletedCollection(old: CollectionModel): CollectionDiff {
  const isView = old.type === "view";
  return {
    status: "deleted",
    key: old.id,
    id: old.id,
    name: old.name,
    type: old.type,
    system: false,
    fields: (old.fields ?? []).map((f) => ({
      status: "removed",
      id: f.id,
      name: f.name,
      type: f.type,
      system: Boolean(f.system),
      changes: [],
    })),
    rules: [],
    props: [],
    indexesAdded: [],
    indexesRemoved: [],
    warnings: [
      isView
        ? { level: "warn", text: "The view is deleted (its data stays in the collections it reads)." }
        : { level: "danger", text: "The collection is deleted with all its records and files." },
    ],
    dataLoss: !isView,
  };
}

function compareCollection(old: CollectionModel, item: Obj, options: ImportOptions): { diff: CollectionDiff; body: Obj } {
  const body: Obj = { ...item };
  const warnings: Warning[] = [];
  const props: ValueChange[] = [];
  const rules: ValueChange[] = [];
  const oldObj = old as unknown as Obj;

  const newName = "name" in item && item.name !== null ? str(item.name) : old.name;
  if (newName !== old.name) {
    props.push({ key: "name", old: old.name, new: newName });
    warnings.push({
      level: "warn",
      text: `Renamed from “${old.name}”: API URLs, SQL and code that use the old name must follow.`,
    });
  }
  const newType = str(item.type) || old.type;
  if ("type" in item && item.type !== null && newType !== old.type) {
    props.push({ key: "type", old: old.type, new: newType });
    warnings.push({ level: "danger", text: `The type of a collection cannot change (${old.type} → ${newType}): the import will fail.` });
  }
  if ("system" in item && Boolean(item.system) !== Boolean(old.system)) {
    props.push({ key: "system", old: Boolean(old.system), new: Boolean(item.system) });
  }
  for (const key of RULE_KEYS) {
    if (!isRuleFor(key, old.type) || !(key in item)) continue;
    const before = oldObj[key] ?? null;
    const after = item[key] ?? null;
    if (before !== after) rules.push({ key, old: before, new: after });
  }
  if (old.type === "view" && "viewQuery" in item) {
    const before = str(oldObj.viewQuery);
    const after = str(item.viewQuery);
    if (normalizeSql(before) !== normalizeSql(after)) props.push({ key: "viewQuery", old: before, new: after });
  }
  if (old.type === "auth") {
    for (const key of AUTH_KEYS) {
      if (key in item) leafChanges(key, oldObj[key], item[key], props);
    }
  }

  let indexesAdded: string[] = [];
  let indexesRemoved: string[] = [];
  if ("indexes" in item && old.type !== "view") {
    const before = (old.indexes ?? []).map(String);
    const after = Array.isArray(item.indexes) ? (item.indexes as unknown[]).map(String) : [];
    const norm = (list: string[]) => new Set(list.map(normalizeSql));
    const beforeSet = norm(before);
    const afterSet = norm(after);
    indexesAdded = after.filter((i) => !beforeSet.has(normalizeSql(i)));
    indexesRemoved = before.filter((i) => !afterSet.has(normalizeSql(i)));
  }

  let fields: FieldDiff[] = [];
  if (old.type === "view") {
    // A view's fields come from its query; what the item lists is ignored.
  } else if (Array.isArray(item.fields)) {
    const result = compareFields(old.fields ?? [], item.fields as Obj[], options);
    fields = result.fields;
    body.fields = result.send;
  } else {
    fields = (old.fields ?? []).map((f) => ({
      status: "unchanged",
      id: f.id,
      name: f.name,
      type: f.type,
      system: Boolean(f.system),
      changes: [],
    }));
  }
  for (const f of fields) {
    if (f.loss) warnings.push({ level: "danger", text: `Field “${f.oldName ?? f.name}”: ${f.loss}` });
    if (f.warning) warnings.push({ level: "warn", text: `Field “${f.name}”: ${f.warning}` });
  }

  const fieldsChange = fields.some((f) => f.status !== "unchanged" && f.status !== "kept");
  const changed =
    fieldsChange || props.length > 0 || rules.length > 0 || indexesAdded.length > 0 || indexesRemoved.length > 0;
  return {
    body,
    diff: {
      status: changed ? "changed" : "unchanged",
      key: old.id,
      id: old.id,
      name: newName,
      oldName: newName !== old.name ? old.name : undefined,
      type: old.type,
      system: Boolean(old.system),
      fields,
      rules,
      props,
      indexesAdded,
      indexesRemoved,
      warnings,
      dataLoss: fields.some((f) => f.loss),
    },
  };
}

/** The fields' fate, and the fields to send (the item's, then the stored ones to keep). */
function compareFields(
  oldFields: CollectionModel["fields"],
  newFields: Obj[],
  options: ImportOptions,
): { fields: FieldDiff[]; send: Obj[] } {
  const claimed = new Set<string>();
  const explicit = new Set(newFields.map((f) => str(f.id)).filter(Boolean));
  const diffs: FieldDiff[] = [];
  /** The stored field each item matched (by position in `newFields`). */
  const matchedOld: (number | undefined)[] = [];
  const keep = new Set<string>();
  const newNames = new Set(newFields.map((f) => str(f.name).toLowerCase()));

  for (const nf of newFields) {
    const id = str(nf.id);
    const name = str(nf.name);
    const type = str(nf.type);
    const of = id
      ? oldFields.find((o) => o.id === id)
      : oldFields.find((o) => o.name === name && o.type === type && !explicit.has(o.id) && !claimed.has(o.id));
    matchedOld.push(of ? oldFields.indexOf(of) : undefined);
    if (!of) {
      const sameName = oldFields.find((o) => o.name.toLowerCase() === name.toLowerCase() && !claimed.has(o.id));
      const stays = sameName && !newFields.some((other) => str(other.id) === sameName.id);
      diffs.push({
        status: "added",
        id,
        name,
        type,
        system: Boolean(nf.system),
        changes: [],
        warning:
          stays && sameName.system
            ? `replaces the system field of the same name (${sameName.type}): the server will likely refuse it.`
            : undefined,
      });
      continue;
    }
    claimed.add(of.id);
    const changes: ValueChange[] = [];
    const oldObj = of as unknown as Obj;
    const keys = new Set([...Object.keys(oldObj), ...Object.keys(nf)]);
    for (const key of keys) {
      if (key === "id" || key === "name" || key === "type") continue;
      // A system field keeps its flag when the item leaves it out.
      if (key === "system" && !(key in nf)) continue;
      const before = oldObj[key];
      const after = key in nf && nf[key] !== null ? nf[key] : zeroLike(before);
      // An option the server did not list (another version's) counts when it is set.
      if (before === undefined && same(after, zeroLike(after))) continue;
      if (!same(before, after)) changes.push({ key, old: before, new: after });
    }
    const renamed = of.name !== name;
    const retyped = of.type !== type;
    diffs.push({
      status: renamed ? "renamed" : changes.length || retyped ? "changed" : "unchanged",
      id: of.id,
      name,
      oldName: renamed ? of.name : undefined,
      type,
      oldType: retyped ? of.type : undefined,
      system: Boolean(of.system),
      changes,
      warning: retyped
        ? `its type cannot change (${of.type} → ${type}): the import will fail. Give the new field another name, or leave out its "id".`
        : of.system && renamed
          ? "system fields cannot be renamed: the import will fail."
          : undefined,
    });
  }

  for (const of of oldFields) {
    if (claimed.has(of.id)) continue;
    const replaced = newNames.has(of.name.toLowerCase());
    const base = { id: of.id, name: of.name, type: of.type, system: Boolean(of.system), changes: [] };
    if (replaced) {
      // An item of the same name but another type (or id) takes its place.
      diffs.push({
        ...base,
        status: "removed",
        loss: of.system
          ? "a system field would be replaced: the server will likely refuse it."
          : `replaced by a new field of the same name: its stored values are lost.`,
      });
    } else if (of.system || options.keepMissingFields) {
      diffs.push({ ...base, status: "kept" });
      keep.add(of.id);
    } else {
      diffs.push({ ...base, status: "removed", loss: "removed: its stored values are lost." });
    }
  }
  // Kept fields go back where they were (before the next stored field the item lists), so
  // `id` stays first when an item leaves it out.
  const send: Obj[] = [];
  let next = 0;
  const flushUpTo = (limit: number) => {
    for (; next < limit; next++) {
      if (keep.has(oldFields[next].id)) send.push(oldFields[next] as unknown as Obj);
    }
  };
  newFields.forEach((nf, i) => {
    const at = matchedOld[i];
    if (at !== undefined) flushUpTo(at);
    send.push(nf);
  });
  flushUpTo(oldFields.length);
  return { fields: diffs, send };
}

/** Changes of the leaves of `after` against `before` (objects merge key by key). */
function leafChanges(path: string, before: unknown, after: unknown, out: ValueChange[]) {
  if (isObj(after) && isObj(before)) {
    for (const key of Object.keys(after)) leafChanges(`${path}.${key}`, before[key], after[key], out);
    return;
  }
  if (isObj(after) && before === undefined) {
    for (const key of Object.keys(after)) leafChanges(`${path}.${key}`, undefined, after[key], out);
    return;
  }
  const a = maskSecrets(path, before);
  const b = maskSecrets(path, after);
  if (!same(a, b)) out.push({ key: path, old: a, new: b });
}

function maskSecrets(path: string, value: unknown): unknown {
  if (/secret$/i.test(path)) return value ? "(secret)" : value;
  if (Array.isArray(value)) {
    return value.map((v) =>
      isObj(v) && "clientSecret" in v ? { ...v, clientSecret: v.clientSecret ? "(secret)" : v.clientSecret } : v,
    );
  }
  return value;
}

// ---------------------------------------------------------------------------------------
// Export

/**
 * A collection as PocketBase's export writes it: without timestamps, and without OAuth2
 * providers (their secrets are not readable; an import that leaves them out keeps the
 * stored ones).
 */
export function exportable(collection: CollectionModel): Obj {
  const out: Obj = { ...(collection as unknown as Obj) };
  delete out.created;
  delete out.updated;
  if (isObj(out.oauth2)) {
    const oauth2 = { ...out.oauth2 };
    delete oauth2.providers;
    out.oauth2 = oauth2;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Helpers

function isRuleFor(key: string, type: string): boolean {
  if (key === "authRule" || key === "manageRule") return type === "auth";
  if (type === "view") return key === "listRule" || key === "viewRule";
  return true;
}

function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function str(value: unknown): string {
  return typeof value === "string" ? value : value === undefined || value === null ? "" : String(value);
}

/** The value a missing option takes: the empty value of the stored one's kind. */
function zeroLike(value: unknown): unknown {
  if (typeof value === "number") return 0;
  if (typeof value === "string") return "";
  if (typeof value === "boolean") return false;
  if (Array.isArray(value)) return [];
  if (isObj(value)) return {};
  return null;
}

export function same(a: unknown, b: unknown): boolean {
  return stable(a ?? null) === stable(b ?? null);
}

function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(",")}]`;
  if (isObj(value)) {
    return `{${Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable(value[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

function normalizeSql(text: string): string {
  return text.trim().replace(/\s+/g, " ").replace(/;$/, "").toLowerCase();
}
