// A view collection's SELECT, checked as you type (debounced) by the server's dry run, with the
// fields it yields and a few of its rows.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorMessage, send } from "../../lib/api";
import { fieldType, type Draft, type Update } from "./model";
import { Spinner } from "../../ui/misc";
import { TypeIcon } from "./icons";

interface Preview {
  query: string;
  fields: { name: string; type: string; [k: string]: unknown }[];
  columns: string[];
  rows: unknown[][];
  error?: string;
}

/** Runs the dry run: the query's fields and its first rows (the server returns up to 10). */
export async function previewView(query: string): Promise<Preview> {
  const dry = await send<{ fields: Preview["fields"]; sample?: Record<string, unknown>[] }>(
    "/api/collections/meta/dry-run-view",
    { method: "POST", body: { query } },
  );
  const fields = dry.fields ?? [];
  const names = fields.map((f) => f.name);
  const rows = (dry.sample ?? []).slice(0, 5).map((r) => names.map((n) => r[n]));
  return { query, fields, columns: names, rows };
}

export function ViewQueryTab(props: {
  draft: Draft;
  update: Update;
  errors: Record<string, string>;
  readOnly: boolean;
  onFields: (fields: Preview["fields"] | null) => void;
}) {
  const query = props.draft.viewQuery ?? "";
  const [preview, setPreview] = useState<Preview | null>(null);
  const [loading, setLoading] = useState(false);
  const seq = useRef(0);

  const run = async (text: string) => {
    const mine = ++seq.current;
    if (!text.trim()) {
      setPreview(null);
      props.onFields(null);
      return;
    }
    setLoading(true);
    try {
      const result = await previewView(text);
      if (mine !== seq.current) return;
      setPreview(result);
      props.onFields(result.fields);
    } catch (error) {
      if (mine !== seq.current) return;
      setPreview({ query: text, fields: [], columns: [], rows: [], error: errorMessage(error) });
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  };

  useEffect(() => {
    const timer = setTimeout(() => void run(query), preview ? 700 : 0);
    return () => clearTimeout(timer);
  }, [query]);

  const error = props.errors["viewQuery"];
  return (
    <div class="view-tab">
      <div class={`field${error ? " has-error" : ""}`}>
        <label class="field-label" for="view-query">
          Select query
        </label>
        <textarea
          id="view-query"
          class="code-input"
          rows={9}
          spellcheck={false}
          readOnly={props.readOnly}
          value={query}
          placeholder={"SELECT id, title, created FROM posts WHERE status = 'published'"}
          onInput={(e) => {
            const text = e.currentTarget.value;
            props.update((d) => ({ ...d, viewQuery: text }), "viewQuery");
          }}
        />
        <small class="field-help">
          One SELECT statement. It must return an <code>id</code> column (use{" "}
          <code>(ROW_NUMBER() OVER()) as id</code> when there is none); every other column becomes a read-only field.
          Wrap a column in <code>CAST(… AS TEXT)</code> or similar to choose its type.
        </small>
        {error && (
          <small class="field-error" role="alert">
            {error}
          </small>
        )}
      </div>
      <div class="row-between">
        <h3>Preview</h3>
        <span class="row">
          {loading && <Spinner label="Checking the query" />}
          <button type="button" class="btn btn-small" onClick={() => void run(query)} disabled={!query.trim()}>
            Run again
          </button>
        </span>
      </div>
      {!query.trim() ? (
        <p class="muted">Write a query to see the fields and rows it gives.</p>
      ) : preview?.error ? (
        <pre class="view-error" role="alert" data-testid="view-error">
          {preview.error}
        </pre>
      ) : preview ? (
        <>
          <p class="small">
            <strong>{preview.fields.length}</strong> fields:{" "}
            {preview.fields.map((f) => (
              <span key={f.name} class="badge view-field" title={fieldType(f.type).label}>
                <TypeIcon type={f.type} /> {f.name} <span class="muted">{f.type}</span>
              </span>
            ))}
          </p>
          {preview.rows.length ? (
            <div class="table-wrap">
              <table class="table" data-testid="view-rows">
                <thead>
                  <tr>
                    {preview.columns.map((c) => (
                      <th key={c}>{c}</th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {preview.rows.map((row, i) => (
                    <tr key={i}>
                      {row.map((cell, j) => (
                        <td key={j}>{cell === null || cell === undefined ? <span class="muted">null</span> : typeof cell === "object" ? JSON.stringify(cell) : String(cell)}</td>
                      ))}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : (
            <p class="muted small">The query returns no rows yet.</p>
          )}
        </>
      ) : null}
    </div>
  );
}
