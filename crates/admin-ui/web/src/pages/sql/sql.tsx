// `#/sql`: the SQL console (POST /api/sql, superusers only). A monospace editor, the result
// of the last statement as a table, the recent queries of this browser, and the collections'
// tables and columns to insert by click.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { errorMessage, send } from "../../lib/api";
import type { Route } from "../../lib/router";
import { collections } from "../../lib/schema";
import { useStore } from "../../lib/store";
import { confirm, Dialog } from "../../ui/dialog";
import { Tabs, Toggle } from "../../ui/form";
import { Empty, PageHeader, Spinner } from "../../ui/misc";
import { copyToClipboard } from "./clipboard";
import { clearHistory, forget, history, loadDraft, remember, saveDraft } from "./history";
import {
  byteLength,
  indent,
  MAX_QUERY_BYTES,
  MAX_ROWS,
  newline,
  quoteIdent,
  statementCount,
  toCsv,
  writeKeyword,
  type EditResult,
} from "./sql-text";

/** The server's answer (crates/server/src/sql.rs). Every value is text or null. */
interface SqlResult {
  execTime: number;
  affectedRows: number;
  columns: { name: string; type: string; nullable: boolean }[];
  rows: (string | null)[][];
}

type RunState =
  | { status: "idle" }
  | { status: "running"; query: string }
  | { status: "done"; query: string; result: SqlResult; roundTrip: number; write: boolean }
  | { status: "error"; query: string; message: string };

const isMac = typeof navigator !== "undefined" && /Mac|iPhone|iPad/.test(navigator.platform);
const RUN_KEYS = isMac ? "⌘ Enter" : "Ctrl Enter";

export function SqlPage(props: { route: Route }) {
  void props;
  const [text, setText] = useState(loadDraft);
  const [selection, setSelection] = useState("");
  const [allowWrites, setAllowWrites] = useState(false);
  const [run, setRun] = useState<RunState>({ status: "idle" });
  const [sideTab, setSideTab] = useState<"tables" | "history">("tables");
  const editor = useRef<HTMLTextAreaElement>(null);

  useEffect(() => {
    const timer = setTimeout(() => saveDraft(text), 300);
    return () => clearTimeout(timer);
  }, [text]);

  const target = selection.trim() ? selection : text;
  const bytes = byteLength(target);
  const write = useMemo(() => writeKeyword(target), [target]);
  const tooLong = bytes > MAX_QUERY_BYTES;
  const running = run.status === "running";

  const execute = async () => {
    const query = target;
    if (!query.trim() || running || tooLong) return;
    if (write && !allowWrites) {
      const ok = await confirm({
        title: "Run a statement that changes data?",
        body: (
          <>
            <p>
              This query writes to the database (<code>{write.toUpperCase()}</code>
              {statementCount(query) > 1 ? ", among several statements" : ""}). Changes made here skip the
              API rules and hooks and cannot be undone.
            </p>
            <p class="muted">Turn on “Allow writes” to run writes without this question.</p>
          </>
        ),
        confirm: "Run it",
        danger: true,
      });
      if (!ok) return;
    }
    setRun({ status: "running", query });
    const started = performance.now();
    try {
      const result = await send<SqlResult>("/api/sql", { method: "POST", body: { query } });
      setRun({
        status: "done",
        query,
        result,
        roundTrip: Math.round(performance.now() - started),
        write: Boolean(write),
      });
      remember(query, true);
    } catch (error) {
      setRun({ status: "error", query, message: errorMessage(error) });
      remember(query, false);
    }
  };

  /** Replaces the editor's selection with `insert`, keeping the browser's undo history. */
  const insertAtCursor = (insert: string) => {
    const el = editor.current;
    if (!el) return;
    el.focus();
    const { selectionStart: start, selectionEnd: end, value } = el;
    // Separates the name from a word it would otherwise touch.
    const before = start > 0 && /[\w"`\]]/.test(value[start - 1]) ? " " : "";
    const after = end < value.length && /[\w"`[]/.test(value[end]) ? " " : "";
    replaceRange(el, start, end, before + insert + after);
  };

  const useQuery = (query: string) => {
    const el = editor.current;
    if (el) {
      el.focus();
      replaceRange(el, 0, el.value.length, query);
    } else {
      setText(query);
    }
  };

  return (
    <main id="main" class="page sql-page">
      <PageHeader title="SQL console" />
      <div class="sql-layout">
        <aside class="sql-side" aria-label="Tables and history">
          <Tabs
            value={sideTab}
            onValue={setSideTab}
            tabs={[
              { value: "tables", label: "Tables" },
              { value: "history", label: "History" },
            ]}
          />
          {sideTab === "tables" ? (
            <SchemaList onInsert={insertAtCursor} onQuery={useQuery} />
          ) : (
            <HistoryList onUse={useQuery} />
          )}
        </aside>
        <section class="sql-main" aria-label="Query">
          <label class="sql-editor-label" for="sql-editor">
            SQL query
          </label>
          <SqlEditor
            editorRef={editor}
            value={text}
            onValue={setText}
            onSelection={setSelection}
            onRun={() => void execute()}
          />
          <div class="sql-toolbar">
            <button
              type="button"
              class={`btn ${write && !allowWrites ? "btn-warn" : "btn-primary"}`}
              onClick={() => void execute()}
              disabled={!target.trim() || running || tooLong}
              data-testid="sql-run"
              title={`Run (${RUN_KEYS})`}
            >
              {running ? <Spinner label="Running" /> : <span aria-hidden="true">▶</span>}
              {selection.trim() ? "Run selection" : "Run"}
            </button>
            <Toggle checked={allowWrites} onChange={setAllowWrites} label="Allow writes" name="allow-writes" />
            {write && (
              <span class="badge badge-warn" data-testid="sql-write-badge">
                writes ({write.toUpperCase()})
              </span>
            )}
            <span class={`sql-bytes${tooLong ? " field-error" : " muted"}`} aria-live="polite">
              {bytes.toLocaleString("en")} / {MAX_QUERY_BYTES.toLocaleString("en")} bytes
              {tooLong ? " — too long for the server" : ""}
            </span>
            <span class="muted sql-hint" id="sql-editor-help">
              {RUN_KEYS} runs · Tab indents · Esc then Tab leaves the editor
            </span>
          </div>
          <Results run={run} />
        </section>
      </div>
    </main>
  );
}

/** Sets `el`'s text in [start, end) to `insert` as typing would (undo works), then selects. */
function replaceRange(el: HTMLTextAreaElement, start: number, end: number, insert: string, select?: [number, number]) {
  el.setSelectionRange(start, end);
  // execCommand keeps the textarea's undo stack; it is deprecated but still the only way.
  const done = document.execCommand?.("insertText", false, insert);
  if (!done) {
    el.setRangeText(insert, start, end, "end");
    el.dispatchEvent(new Event("input", { bubbles: true }));
  }
  if (select) el.setSelectionRange(select[0], select[1]);
}

/** Applies an edit computed on the whole value as the smallest replaced range. */
function applyEdit(el: HTMLTextAreaElement, edit: EditResult) {
  const old = el.value;
  const next = edit.value;
  let prefix = 0;
  while (prefix < old.length && prefix < next.length && old[prefix] === next[prefix]) prefix++;
  let suffix = 0;
  while (
    suffix < old.length - prefix &&
    suffix < next.length - prefix &&
    old[old.length - 1 - suffix] === next[next.length - 1 - suffix]
  )
    suffix++;
  replaceRange(el, prefix, old.length - suffix, next.slice(prefix, next.length - suffix), [edit.start, edit.end]);
}

function SqlEditor(props: {
  editorRef: { current: HTMLTextAreaElement | null };
  value: string;
  onValue: (value: string) => void;
  onSelection: (text: string) => void;
  onRun: () => void;
}) {
  // After Escape, Tab moves focus as usual (the editor does not trap the keyboard).
  const tabReleased = useRef(false);
  const reportSelection = (el: HTMLTextAreaElement) =>
    props.onSelection(el.value.slice(el.selectionStart, el.selectionEnd));

  return (
    <textarea
      id="sql-editor"
      ref={props.editorRef}
      class="code-input sql-editor"
      spellcheck={false}
      autoCapitalize="off"
      autoComplete="off"
      autoFocus
      rows={8}
      placeholder={"SELECT id, created FROM users ORDER BY created DESC LIMIT 10"}
      aria-describedby="sql-editor-help"
      value={props.value}
      onInput={(e) => {
        props.onValue(e.currentTarget.value);
        reportSelection(e.currentTarget);
      }}
      onSelect={(e) => reportSelection(e.currentTarget)}
      onBlur={() => (tabReleased.current = false)}
      onKeyDown={(e) => {
        const el = e.currentTarget;
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
          e.preventDefault();
          props.onRun();
          return;
        }
        if (e.key === "Escape") {
          tabReleased.current = true;
          return;
        }
        if (e.key === "Tab" && !e.altKey && !e.ctrlKey && !e.metaKey) {
          if (tabReleased.current) return;
          e.preventDefault();
          applyEdit(el, indent(el.value, el.selectionStart, el.selectionEnd, e.shiftKey));
          return;
        }
        tabReleased.current = false;
        if (e.key === "Enter" && !e.shiftKey && !e.altKey) {
          e.preventDefault();
          applyEdit(el, newline(el.value, el.selectionStart, el.selectionEnd));
        }
      }}
    />
  );
}

function SchemaList(props: { onInsert: (text: string) => void; onQuery: (query: string) => void }) {
  const list = useStore(collections);
  const [search, setSearch] = useState("");
  const [showSystem, setShowSystem] = useState(false);
  const [open, setOpen] = useState<Record<string, boolean>>({});
  const needle = search.trim().toLowerCase();
  const matches = (c: (typeof list)[number]) =>
    !needle ||
    c.name.toLowerCase().includes(needle) ||
    (c.fields ?? []).some((f) => f.name.toLowerCase().includes(needle));
  const visible = list.filter((c) => (showSystem || !c.system) && matches(c));
  const systemCount = list.filter((c) => c.system).length;

  return (
    <div class="sql-schema">
      <input
        type="search"
        placeholder="Filter tables and columns"
        aria-label="Filter tables and columns"
        value={search}
        onInput={(e) => setSearch(e.currentTarget.value)}
      />
      <p class="muted sql-schema-help">
        Click a name to insert it at the cursor.
      </p>
      {visible.length === 0 && <p class="muted">No tables match.</p>}
      <ul class="sql-tables" data-testid="sql-tables">
        {visible.map((c) => {
          const expanded = open[c.id] ?? Boolean(needle);
          const fields = c.fields ?? [];
          return (
            <li key={c.id}>
              <div class="sql-table-row">
                <button
                  type="button"
                  class="btn btn-icon sql-expand"
                  aria-expanded={expanded}
                  aria-label={`${expanded ? "Hide" : "Show"} the columns of ${c.name}`}
                  onClick={() => setOpen({ ...open, [c.id]: !expanded })}
                >
                  {expanded ? "▾" : "▸"}
                </button>
                <button
                  type="button"
                  class="sql-name"
                  title={`Insert ${c.name}${c.type === "view" ? " (a view)" : ""}`}
                  onClick={() => props.onInsert(quoteIdent(c.name))}
                  data-table={c.name}
                >
                  <span class={`ctype ctype-${c.type}`} aria-hidden="true">
                    {c.type === "auth" ? "◉" : c.type === "view" ? "◧" : "▤"}
                  </span>
                  {c.name}
                </button>
                <button
                  type="button"
                  class="btn btn-link btn-small sql-select-all"
                  title={`SELECT * FROM ${c.name} LIMIT 100`}
                  aria-label={`Query ${c.name}: select its first 100 rows`}
                  onClick={() => props.onQuery(`SELECT *\nFROM ${quoteIdent(c.name)}\nLIMIT 100`)}
                >
                  select
                </button>
              </div>
              {expanded && (
                <ul class="sql-columns" aria-label={`Columns of ${c.name}`}>
                  {fields.map((f) => (
                    <li key={f.id}>
                      <button
                        type="button"
                        class="sql-name sql-column"
                        title={`Insert ${f.name}`}
                        onClick={() => props.onInsert(quoteIdent(f.name))}
                      >
                        <span class={needle && f.name.toLowerCase().includes(needle) ? "sql-match" : ""}>{f.name}</span>
                        <span class="muted sql-col-type">{f.type}</span>
                      </button>
                    </li>
                  ))}
                </ul>
              )}
            </li>
          );
        })}
      </ul>
      {systemCount > 0 && (
        <button type="button" class="btn btn-link btn-small" onClick={() => setShowSystem(!showSystem)}>
          {showSystem ? "Hide" : "Show"} system collections ({systemCount})
        </button>
      )}
    </div>
  );
}

function HistoryList(props: { onUse: (query: string) => void }) {
  const list = useStore(history);
  if (!list.length) {
    return <p class="muted sql-history-empty">Queries you run appear here (kept in this browser).</p>;
  }
  return (
    <div class="sql-history">
      <ul data-testid="sql-history">
        {list.map((entry) => (
          <li key={entry.query} class="sql-history-item">
            <button
              type="button"
              class="sql-history-use"
              title="Put this query in the editor"
              onClick={() => props.onUse(entry.query)}
            >
              <code>{entry.query.length > 200 ? entry.query.slice(0, 200) + "…" : entry.query}</code>
              <span class="muted sql-history-meta">
                {entry.ok ? "" : "failed · "}
                {new Date(entry.at).toLocaleString("sv-SE")}
              </span>
            </button>
            <button
              type="button"
              class="btn btn-icon"
              aria-label="Remove from history"
              title="Remove from history"
              onClick={() => forget(entry.query)}
            >
              ×
            </button>
          </li>
        ))}
      </ul>
      <button type="button" class="btn btn-link btn-small" onClick={clearHistory}>
        Clear history
      </button>
    </div>
  );
}

/** Values longer than this (or with a line break) are cut in the table and open whole. */
const CELL_CHARS = 120;

function Results(props: { run: RunState }) {
  const run = props.run;
  const [full, setFull] = useState<{ column: string; value: string } | null>(null);

  if (run.status === "idle") {
    return (
      <div class="sql-results">
        <Empty>
          <p>Write a query and run it: the result of the last statement shows here.</p>
          <p class="sql-caveats">
            At most {MAX_ROWS.toLocaleString("en")} rows come back, and a statement stops at the server's query timeout.
            Statements that would change a collection's table, view or indexes are refused: change collections in
            their editor. Writes here skip API rules and hooks.
          </p>
        </Empty>
      </div>
    );
  }
  if (run.status === "running") {
    return (
      <div class="sql-results sql-status" aria-live="polite">
        <Spinner label="Running" /> Running…
      </div>
    );
  }
  if (run.status === "error") {
    return (
      <div class="sql-results">
        <div class="sql-error" role="alert" data-testid="sql-error">
          <pre>{run.message}</pre>
        </div>
      </div>
    );
  }

  const { result } = run;
  const columns = result.columns.map((c) => c.name);
  const timing = (
    <span class="muted" title={`Round trip ${run.roundTrip} ms`}>
      {result.execTime.toLocaleString("en")} ms
    </span>
  );
  if (!result.columns.length) {
    return (
      <div class="sql-results">
        <div class="sql-summary" role="status" data-testid="sql-summary">
          <span>
            {run.write || result.affectedRows
              ? `Done: ${result.affectedRows.toLocaleString("en")} row${result.affectedRows === 1 ? "" : "s"} affected.`
              : "Done: the statement returned no columns."}
          </span>
          {timing}
        </div>
      </div>
    );
  }

  const count = result.rows.length;
  const csv = () => toCsv(columns, result.rows);
  const download = () => {
    const blob = new Blob([csv()], { type: "text/csv" });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = "query.csv";
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  return (
    <div class="sql-results">
      <div class="sql-summary" role="status" data-testid="sql-summary">
        <span>
          <strong>{count.toLocaleString("en")}</strong> row{count === 1 ? "" : "s"}
          {count >= MAX_ROWS && (
            <span class="muted"> (the server returns at most {MAX_ROWS.toLocaleString("en")}: add a LIMIT/OFFSET for more)</span>
          )}
        </span>
        {timing}
        <span class="sql-summary-actions">
          <button
            type="button"
            class="btn btn-small"
            onClick={() => void copyToClipboard(csv(), "Copied as CSV")}
          >
            Copy CSV
          </button>
          <button type="button" class="btn btn-small" onClick={download}>
            Download CSV
          </button>
        </span>
      </div>
      {count === 0 ? (
        <div class="table-wrap">
          <table class="table sql-table">
            <thead>
              <tr>
                {result.columns.map((c, i) => (
                  <th key={i} scope="col">
                    {c.name}
                  </th>
                ))}
              </tr>
            </thead>
          </table>
          <Empty>No rows.</Empty>
        </div>
      ) : (
        <div class="table-wrap sql-table-wrap">
          <table class="table sql-table" data-testid="sql-table">
            <thead>
              <tr>
                <th scope="col" class="sql-rownum" aria-label="Row">
                  #
                </th>
                {result.columns.map((c, i) => (
                  <th key={i} scope="col" title={c.type || "no declared type"}>
                    {c.name}
                    {c.type && <span class="sql-col-type"> {c.type.toLowerCase()}</span>}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {result.rows.map((row, r) => (
                <tr key={r}>
                  <td class="sql-rownum muted">{r + 1}</td>
                  {row.map((value, c) => (
                    <Cell key={c} value={value} onOpen={() => setFull({ column: columns[c], value: value ?? "" })} />
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Dialog
        open={full !== null}
        title={full ? `Value of ${full.column}` : ""}
        onClose={() => setFull(null)}
        wide
        testId="sql-cell-dialog"
        footer={
          <>
            <button
              type="button"
              class="btn"
              onClick={() => void copyToClipboard(full?.value ?? "")}
            >
              Copy
            </button>
            <button type="button" class="btn btn-primary" onClick={() => setFull(null)}>
              Close
            </button>
          </>
        }
      >
        {full && <pre class="sql-full-value">{pretty(full.value)}</pre>}
      </Dialog>
    </div>
  );
}

function Cell(props: { value: string | null; onOpen: () => void }) {
  const value = props.value;
  if (value === null) {
    return (
      <td>
        <span class="sql-null">NULL</span>
      </td>
    );
  }
  const long = value.length > CELL_CHARS || value.includes("\n");
  if (!long) return <td title={value.length > 40 ? value : undefined}>{value}</td>;
  const short = value.replace(/\s+/g, " ").slice(0, CELL_CHARS);
  return (
    <td class="sql-cell-long">
      <button type="button" class="sql-cell-open" onClick={props.onOpen} title="Show the whole value">
        <span>{short}</span>
        <span class="sql-more" aria-label={`show all ${value.length.toLocaleString("en")} characters`}>
          more
        </span>
      </button>
    </td>
  );
}

/** JSON values are shown indented; anything else as it is. */
function pretty(value: string): string {
  const t = value.trim();
  if ((t.startsWith("{") && t.endsWith("}")) || (t.startsWith("[") && t.endsWith("]"))) {
    try {
      return JSON.stringify(JSON.parse(t), null, 2);
    } catch {
      // Not JSON after all.
    }
  }
  return value;
}
