// Indexes of a base/auth collection: the list, and a dialog that builds `CREATE [UNIQUE] INDEX`
// from a column picker or takes the SQL as typed.
import { useState } from "preact/hooks";
import { Dialog } from "../../ui/dialog";
import { Field, TextInput } from "../../ui/form";
import { Check } from "./inputs";
import {
  activeFields,
  buildIndex,
  indexUsesColumn,
  parseIndex,
  randomId,
  type Draft,
  type ParsedIndex,
  type Update,
} from "./model";

export function IndexesSection(props: {
  draft: Draft;
  update: Update;
  errors: Record<string, string>;
  readOnly: boolean;
}) {
  const { draft } = props;
  const [editing, setEditing] = useState<{ at: number | null; sql: string } | null>(null);
  const removed = draft.fields.filter((f) => f._removed).map((f) => f.name);

  const save = (sql: string) => {
    props.update((d) => {
      const indexes = [...d.indexes];
      if (editing?.at == null) indexes.push(sql);
      else indexes[editing.at] = sql;
      return { ...d, indexes };
    }, editing?.at == null ? undefined : `indexes.${editing.at}`);
    setEditing(null);
  };

  return (
    <section class="indexes-section" aria-labelledby="indexes-heading">
      <div class="row-between">
        <h3 id="indexes-heading">Indexes and unique constraints ({draft.indexes.length})</h3>
        {!props.readOnly && (
          <button type="button" class="btn btn-small" data-testid="add-index" onClick={() => setEditing({ at: null, sql: "" })}>
            + New index
          </button>
        )}
      </div>
      {props.errors["indexes"] && <p class="field-error">{props.errors["indexes"]}</p>}
      {draft.indexes.length === 0 ? (
        <p class="muted small">
          No indexes. Add one to speed up frequent filters and sorts, or a unique index to forbid duplicate values.
        </p>
      ) : (
        <ul class="index-list">
          {draft.indexes.map((sql, i) => {
            const parsed = parseIndex(sql);
            const dropped = removed.find((name) => indexUsesColumn(sql, name));
            const error = props.errors[`indexes.${i}`];
            return (
              <li key={i} class={`index-item${dropped ? " index-dropped" : ""}${error ? " has-error" : ""}`} data-testid="index-item">
                <div class="index-summary">
                  {parsed ? (
                    <>
                      {parsed.unique && <span class="badge badge-warn">unique</span>}
                      <code class="index-cols">
                        {parsed.columns.map((c) => c.name + (c.suffix ? ` ${c.suffix}` : "")).join(", ")}
                      </code>
                      {parsed.where && <code class="muted">WHERE {parsed.where}</code>}
                      <span class="muted small">{parsed.name}</span>
                    </>
                  ) : (
                    <code>{sql}</code>
                  )}
                  {dropped && <span class="badge badge-danger">dropped with field {dropped}</span>}
                </div>
                {!props.readOnly && (
                  <span class="btn-group">
                    <button type="button" class="btn btn-small" aria-label={`Edit index ${parsed?.name ?? i + 1}`} onClick={() => setEditing({ at: i, sql })}>
                      Edit
                    </button>
                    <button
                      type="button"
                      class="btn btn-small btn-outline-danger"
                      aria-label={`Remove index ${parsed?.name ?? i + 1}`}
                      onClick={() => props.update((d) => ({ ...d, indexes: d.indexes.filter((_, j) => j !== i) }))}
                    >
                      Remove
                    </button>
                  </span>
                )}
                {error && (
                  <small class="field-error" role="alert">
                    {error}
                  </small>
                )}
              </li>
            );
          })}
        </ul>
      )}
      {editing && (
        <IndexDialog
          draft={draft}
          sql={editing.sql}
          isNew={editing.at == null}
          error={editing.at != null ? props.errors[`indexes.${editing.at}`] : undefined}
          onClose={() => setEditing(null)}
          onSave={save}
        />
      )}
    </section>
  );
}

function IndexDialog(props: {
  draft: Draft;
  sql: string;
  isNew: boolean;
  error?: string;
  onClose: () => void;
  onSave: (sql: string) => void;
}) {
  const table = props.draft.name;
  const initial: ParsedIndex = parseIndex(props.sql) ?? {
    unique: false,
    ifNotExists: false,
    name: `idx_${randomId(10)}`,
    table,
    columns: [],
    where: "",
  };
  const [index, setIndex] = useState<ParsedIndex>(initial);
  const [raw, setRaw] = useState<string>(props.sql || "");
  const [rawMode, setRawMode] = useState<boolean>(Boolean(props.sql) && !parseIndex(props.sql));
  const fields = activeFields(props.draft);
  const nocase = index.columns.length > 0 && index.columns.every((c) => /collate\s+nocase/i.test(c.suffix));

  const change = (next: ParsedIndex) => {
    setIndex(next);
    setRaw(next.columns.length ? buildIndex({ ...next, table }) : "");
  };

  const toggleColumn = (name: string, on: boolean) => {
    const columns = on
      ? [...index.columns, { name, suffix: nocase ? "COLLATE NOCASE" : "", expression: false }]
      : index.columns.filter((c) => c.name !== name);
    change({ ...index, columns });
  };

  const sql = rawMode ? raw.trim() : index.columns.length ? buildIndex({ ...index, table }) : "";
  const parsedRaw = rawMode ? parseIndex(raw) : index;

  return (
    <Dialog
      open
      title={props.isNew ? "New index" : "Edit index"}
      onClose={props.onClose}
      testId="index-dialog"
      footer={
        <>
          <button type="button" class="btn" onClick={props.onClose}>
            Cancel
          </button>
          <button type="button" class="btn btn-primary" disabled={!sql} onClick={() => props.onSave(sql)}>
            {props.isNew ? "Add index" : "Set index"}
          </button>
        </>
      }
    >
      {props.error && <p class="field-error">{props.error}</p>}
      <div class="row index-mode" role="radiogroup" aria-label="How to define the index">
        <label class="check">
          <input type="radio" name="index-mode" checked={!rawMode} disabled={rawMode && !parseIndex(raw)} onChange={() => {
            const parsed = parseIndex(raw);
            if (parsed) setIndex(parsed);
            setRawMode(false);
          }} />
          <span>Pick columns</span>
        </label>
        <label class="check">
          <input type="radio" name="index-mode" checked={rawMode} onChange={() => {
            setRaw(sql || raw);
            setRawMode(true);
          }} />
          <span>SQL</span>
        </label>
      </div>
      {!rawMode ? (
        <>
          <Check checked={index.unique} onChange={(v) => change({ ...index, unique: v })} label="Unique" help="Refuse two records with the same values in these columns" testId="index-unique" />
          <fieldset class="index-columns">
            <legend class="field-label">Columns (in order of selection)</legend>
            {fields.map((f) => {
              const at = index.columns.findIndex((c) => c.name === f.name);
              return (
                <label key={f._key} class="check">
                  <input type="checkbox" checked={at >= 0} onChange={(e) => toggleColumn(f.name, e.currentTarget.checked)} />
                  <span>{f.name}</span>
                  {at >= 0 && <span class="badge">{at + 1}</span>}
                </label>
              );
            })}
            {index.columns.filter((c) => c.expression || !fields.some((f) => f.name === c.name)).map((c) => (
              <span key={c.name} class="badge badge-warn">
                {c.name} (not a field)
              </span>
            ))}
          </fieldset>
          <Check
            checked={nocase}
            onChange={(v) =>
              change({
                ...index,
                columns: index.columns.map((c) => ({ ...c, suffix: v ? "COLLATE NOCASE" : c.suffix.replace(/collate\s+nocase/i, "").trim() })),
              })
            }
            label="Case-insensitive (COLLATE NOCASE)"
            help="Makes identity lookups and uniqueness ignore letter case"
            disabled={!index.columns.length}
          />
          <div class="grid-2">
            <Field label="Index name">
              <TextInput class="mono" value={index.name} onValue={(v) => change({ ...index, name: v })} />
            </Field>
            <Field label="Only rows where (optional)" help="A partial index, e.g. email != ''">
              <TextInput class="mono" value={index.where} onValue={(v) => change({ ...index, where: v })} placeholder="`email` != ''" />
            </Field>
          </div>
          <p class="small muted">SQL</p>
          <pre class="code-preview" data-testid="index-sql">{sql || "Pick at least one column."}</pre>
        </>
      ) : (
        <Field
          label="CREATE INDEX statement"
          help={parsedRaw ? `Index ${parsedRaw.name} on ${parsedRaw.columns.map((c) => c.name).join(", ")}` : "The column picker cannot read this statement; it is saved as typed."}
        >
          <textarea class="code-input" rows={5} value={raw} spellcheck={false} onInput={(e) => setRaw(e.currentTarget.value)} placeholder={`CREATE UNIQUE INDEX idx_name ON ${table || "table"} (column)`} />
        </Field>
      )}
    </Dialog>
  );
}
