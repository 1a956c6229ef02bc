// Pure helpers of the SQL console: what a statement writes, identifier quoting, byte length,
// CSV, and the editor's indentation.

/** The server's bound on `query` (crates/server/src/sql.rs, MAX_QUERY_BYTES). */
export const MAX_QUERY_BYTES = 5000;
/** Rows of the last statement the server returns at most (MAX_ROWS). */
export const MAX_ROWS = 1000;

/** Words that start a statement which changes the database. */
const WRITE_WORDS = new Set([
  "insert",
  "update",
  "delete",
  "replace",
  "create",
  "drop",
  "alter",
  "vacuum",
  "reindex",
  "attach",
  "detach",
]);

export interface Token {
  /** "word": a bare word (lower-cased); "punct": one character; others are skipped text. */
  kind: "word" | "punct";
  text: string;
}

/** Bare words and punctuation of `sql`, skipping comments, strings and quoted identifiers. */
export function tokens(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === "-" && sql[i + 1] === "-") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? n : end + 1;
    } else if (c === "/" && sql[i + 1] === "*") {
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === "'" || c === '"' || c === "`") {
      // A quote inside is doubled ('it''s'), which reads as two adjacent quoted runs here.
      const end = sql.indexOf(c, i + 1);
      i = end < 0 ? n : end + 1;
      if (c !== "'") out.push({ kind: "word", text: "" });
    } else if (c === "[") {
      const end = sql.indexOf("]", i + 1);
      i = end < 0 ? n : end + 1;
      out.push({ kind: "word", text: "" });
    } else if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$]/.test(sql[j])) j++;
      out.push({ kind: "word", text: sql.slice(i, j).toLowerCase() });
      i = j;
    } else {
      out.push({ kind: "punct", text: c });
      i++;
    }
  }
  return out;
}

/**
 * The write keyword of the first statement in `sql` that changes the database, or null.
 * Broader than the server's own test (its first word): `WITH … DELETE`, a write after a
 * comment or after another statement, and `PRAGMA x = y` count too. `replace(` is the string
 * function, not a statement; an `EXPLAIN …` statement only describes.
 */
export function writeKeyword(sql: string): string | null {
  for (const statement of statements(tokens(sql))) {
    if (statement[0]?.text === "explain") continue;
    if (statement[0]?.text === "pragma") {
      // `pragma name = value` sets; `pragma name` and `pragma table_info(x)` read.
      if (statement.some((t) => t.text === "=")) return "pragma";
      continue;
    }
    for (let k = 0; k < statement.length; k++) {
      const t = statement[k];
      if (t.kind !== "word" || !WRITE_WORDS.has(t.text)) continue;
      if (t.text === "replace" && statement[k + 1]?.text === "(") continue;
      // `x.delete` is a qualified name.
      if (statement[k - 1]?.text === ".") continue;
      return t.text;
    }
  }
  return null;
}

function statements(list: Token[]): Token[][] {
  const out: Token[][] = [[]];
  for (const t of list) {
    if (t.kind === "punct" && t.text === ";") out.push([]);
    else out[out.length - 1].push(t);
  }
  return out.filter((s) => s.length > 0);
}

/** How many statements `sql` holds (semicolons outside strings and comments). */
export function statementCount(sql: string): number {
  return statements(tokens(sql)).length;
}

const RESERVED = new Set(
  (
    "abort action add after all alter always analyze and as asc attach autoincrement before begin between by " +
    "cascade case cast check collate column commit conflict constraint create cross current current_date " +
    "current_time current_timestamp database default deferrable deferred delete desc detach distinct do drop " +
    "each else end escape except exclude exclusive exists explain fail filter first following for foreign from " +
    "full generated glob group groups having if ignore immediate in index indexed initially inner insert " +
    "instead intersect into is isnull join key last left like limit match materialized natural no not " +
    "nothing notnull null nulls of offset on or order others outer over partition plan pragma preceding " +
    "primary query raise range recursive references regexp reindex release rename replace restrict returning " +
    "right rollback row rows savepoint select set table temp temporary then ties to transaction trigger " +
    "unbounded union unique update using vacuum values view virtual when where window with without"
  ).split(" "),
);

/** `name` as an SQL identifier: bare when it can be, else double-quoted. */
export function quoteIdent(name: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !RESERVED.has(name.toLowerCase())) return name;
  return `"${name.replace(/"/g, '""')}"`;
}

/** UTF-8 length of `text` in bytes (the server's limit counts bytes). */
export function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** Rows as CSV (RFC 4180), the header first; NULL is an empty cell. */
export function toCsv(columns: string[], rows: (string | null)[][]): string {
  const cell = (value: string | null) => {
    if (value === null) return "";
    return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
  };
  return [columns, ...rows].map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
}

export interface EditResult {
  value: string;
  start: number;
  end: number;
}

const INDENT = "  ";

/**
 * Tab in the editor: with no selection (or one within a line) inserts two spaces; with a
 * selection over several lines indents each line. Shift+Tab removes up to two spaces from the
 * start of each selected line.
 */
export function indent(value: string, start: number, end: number, outdent: boolean): EditResult {
  const lineStart = value.lastIndexOf("\n", start - 1) + 1;
  const multiLine = value.slice(start, end).includes("\n");
  if (!outdent && !multiLine) {
    return { value: value.slice(0, start) + INDENT + value.slice(end), start: start + 2, end: start + 2 };
  }
  // The selected lines: from the start of the first to the end of the last (a selection that
  // ends at the very start of a line leaves that line out).
  const lastEnd = end > start && value[end - 1] === "\n" ? end - 1 : end;
  const blockEndIdx = value.indexOf("\n", lastEnd);
  const blockEnd = blockEndIdx < 0 ? value.length : blockEndIdx;
  const lines = value.slice(lineStart, blockEnd).split("\n");
  let firstDelta = 0;
  let total = 0;
  const changed = lines.map((line, i) => {
    if (outdent) {
      const remove = line.startsWith(INDENT) ? 2 : line.startsWith(" ") || line.startsWith("\t") ? 1 : 0;
      if (i === 0) firstDelta = -remove;
      total -= remove;
      return line.slice(remove);
    }
    if (i === 0) firstDelta = 2;
    total += 2;
    return INDENT + line;
  });
  const next = value.slice(0, lineStart) + changed.join("\n") + value.slice(blockEnd);
  const newStart = Math.max(lineStart, start + firstDelta);
  const newEnd = multiLine ? end + total : Math.max(lineStart, end + firstDelta);
  return { value: next, start: newStart, end: Math.max(newStart, newEnd) };
}

/** Enter keeps the current line's indentation. */
export function newline(value: string, start: number, end: number): EditResult {
  const lineStart = value.lastIndexOf("\n", start - 1) + 1;
  const lead = /^[ \t]*/.exec(value.slice(lineStart, start))?.[0] ?? "";
  const insert = "\n" + lead;
  return { value: value.slice(0, start) + insert + value.slice(end), start: start + insert.length, end: start + insert.length };
}
