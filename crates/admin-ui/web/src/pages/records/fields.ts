// Pure helpers of the records browser: which fields show, how values convert between the
// server's shapes and the inputs', the effective filter, and CSV.
import type { CollectionField } from "pocketbase";
import type { CollectionModel, RecordModel } from "../../lib/api";
import { findCollection } from "../../lib/schema";

export type { CollectionField };

/** Fields never shown nor sent as values: secrets. */
export function isSecret(field: CollectionField): boolean {
  return field.type === "password" || (field.name === "tokenKey" && field.system);
}

/** The fields a table may show (in schema order). */
export function listableFields(collection: CollectionModel): CollectionField[] {
  return (collection.fields ?? []).filter((f) => !isSecret(f));
}

export function isMultiple(field: CollectionField): boolean {
  return (field.type === "select" || field.type === "relation" || field.type === "file") && Number(field.maxSelect) > 1;
}

export function isAuth(collection: CollectionModel): boolean {
  return collection.type === "auth";
}

export function isView(collection: CollectionModel): boolean {
  return collection.type === "view";
}

/** The sort used when the user picked none: newest first, where rows have a rowid. */
export function defaultSort(collection: CollectionModel): string {
  return isView(collection) ? "" : "-@rowid";
}

/** Fields of a (related) collection that name a record in a cell or chip. */
export function presentableFields(collection: CollectionModel | undefined): CollectionField[] {
  if (!collection) return [];
  const fields = (collection.fields ?? []).filter((f) => !isSecret(f));
  const marked = fields.filter((f) => f.presentable);
  if (marked.length) return marked;
  // None marked presentable: the first field with a naming name, rather than a bare id.
  for (const name of ["name", "title", "label", "username", "email"]) {
    const found = fields.find((f) => f.name === name && !f.hidden);
    if (found) return [found];
  }
  return [];
}

/** A short text naming a record: its presentable fields, else its id. */
export function recordLabel(record: RecordModel | undefined | null, collection?: CollectionModel): string {
  if (!record) return "";
  const target = collection ?? findCollection(record.collectionId) ?? findCollection(record.collectionName);
  const parts = presentableFields(target)
    .map((f) => plainValue(record[f.name], f))
    .filter((v) => v !== "");
  return parts.length ? parts.join(" · ") : record.id;
}

/** A one-line text of any value (for labels, CSV, excerpts). */
export function plainValue(value: unknown, field?: CollectionField): string {
  if (value === null || value === undefined) return "";
  if (field?.type === "editor") return htmlToText(String(value));
  if (Array.isArray(value)) return value.map((v) => plainValue(v)).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

const textCache = new Map<string, string>();

/** Text content of HTML, without running or loading anything (DOMParser documents are inert). */
export function htmlToText(html: string): string {
  if (!html) return "";
  const cached = textCache.get(html);
  if (cached !== undefined) return cached;
  const doc = new DOMParser().parseFromString(html, "text/html");
  const text = (doc.body.textContent ?? "").replace(/\s+/g, " ").trim();
  // Table cells re-render often: keep the last few hundred conversions.
  if (textCache.size > 500) textCache.delete(textCache.keys().next().value as string);
  textCache.set(html, text);
  return text;
}

export function excerpt(text: string, max = 80): string {
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

/** The value of a field in a new record. */
export function emptyValue(field: CollectionField): unknown {
  switch (field.type) {
    case "number":
      return 0;
    case "bool":
      return false;
    case "json":
      return null;
    case "geoPoint":
      return { lon: 0, lat: 0 };
    case "select":
    case "relation":
    case "file":
      return isMultiple(field) ? [] : "";
    default:
      return "";
  }
}

/** A field's value as a list (select/relation/file values are a string or an array). */
export function asList(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(String).filter(Boolean);
  if (value === null || value === undefined || value === "") return [];
  return [String(value)];
}

/** `2024-01-02 03:04:05.678Z` → `2024-01-02T04:04:05` (the browser's local time, for datetime-local). */
export function serverDateToLocalInput(value: unknown): string {
  if (!value || typeof value !== "string") return "";
  const date = new Date(value.replace(" ", "T"));
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/** The inverse: local datetime-local text → the server's UTC form. */
export function localInputToServerDate(value: string): string {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  return date.toISOString().replace("T", " ");
}

/** Is this file name an image the server can thumbnail? */
export function isImageName(name: string): boolean {
  return /\.(png|jpe?g|gif|webp)$/i.test(name);
}

export function isPreviewableImage(name: string): boolean {
  return /\.(png|jpe?g|gif|webp|svg|avif|bmp|ico)$/i.test(name);
}

/** The name the user uploaded, without the random suffix the server added. */
export function originalFileName(stored: string): string {
  return stored.replace(/_[a-z0-9]{10}(\.[^.]*)?$/i, "$1");
}

/**
 * The filter sent to the server. Text with no operator (`alice`) is a quick search: every
 * text-like field contains it. Anything else goes as written.
 */
export function effectiveFilter(raw: string, collection: CollectionModel): string {
  const text = raw.trim();
  if (!text) return "";
  if (/[=<>~!&|()]/.test(text) || /^@/.test(text)) return text;
  const searchable = (collection.fields ?? []).filter(
    (f) => !isSecret(f) && ["text", "email", "url", "editor", "select"].includes(f.type),
  );
  if (!searchable.length) return text;
  const quoted = JSON.stringify(text);
  return searchable.map((f) => `${f.name} ~ ${quoted}`).join(" || ");
}

/** Is `raw` a quick search rather than an expression? */
export function isQuickSearch(raw: string): boolean {
  const text = raw.trim();
  return !!text && !/[=<>~!&|()]/.test(text) && !/^@/.test(text);
}

/** Parses `-created,name` into `[{name:"created", desc:true}, …]`. */
export function parseSort(sort: string): { name: string; desc: boolean }[] {
  return sort
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => ({ name: s.replace(/^[-+]/, ""), desc: s.startsWith("-") }));
}

export function formatSort(items: { name: string; desc: boolean }[]): string {
  return items.map((s) => (s.desc ? "-" : "") + s.name).join(",");
}

/**
 * A header click: asc → desc → off. Without `add` the column becomes the only sort; with it
 * (Shift+click) the column is added to or cycled within the existing list.
 */
export function cycleSort(sort: string, name: string, add: boolean): string {
  const items = parseSort(sort);
  const index = items.findIndex((s) => s.name === name);
  const current = index >= 0 ? items[index] : null;
  const next = !current ? { name, desc: false } : !current.desc ? { name, desc: true } : null;
  if (!add) return next ? formatSort([next]) : "";
  const rest = items.filter((s) => s.name !== name);
  if (!next) return formatSort(rest);
  if (index >= 0) {
    const copy = [...items];
    copy[index] = next;
    return formatSort(copy);
  }
  return formatSort([...rest, next]);
}

/** RFC 4180 CSV of records over the given columns; arrays and objects as JSON. */
export function toCsv(records: RecordModel[], columns: string[]): string {
  const cell = (value: unknown): string => {
    let text: string;
    if (value === null || value === undefined) text = "";
    else if (typeof value === "object") text = JSON.stringify(value);
    else text = String(value);
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  const lines = [columns.map(cell).join(",")];
  for (const record of records) lines.push(columns.map((c) => cell(record[c])).join(","));
  return lines.join("\r\n") + "\r\n";
}

/** Starts a download of `content` as a file named `name`. */
export function downloadFile(name: string, content: BlobPart, type: string) {
  const blob = new Blob([content], { type });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.rel = "noopener";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** `20240102-030405`, local time, for file names. */
export function stamp(date = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return (
    `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}-` +
    `${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`
  );
}

/** Reads/writes a JSON value in localStorage, tolerating a full or missing storage. */
export function loadLocal<T>(key: string, fallback: T): T {
  try {
    const raw = localStorage.getItem(key);
    return raw ? (JSON.parse(raw) as T) : fallback;
  } catch {
    return fallback;
  }
}

export function saveLocal(key: string, value: unknown) {
  try {
    if (value === undefined) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the preference lasts for this page only.
  }
}

/** Equality of JSON-like values (for the dirty check). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}
